"""Bar specifications: which bars to build, as frozen config models and as CLI strings.

A spec is a pydantic model (`FrozenConfig`: frozen, unknown keys rejected) discriminated by `kind`,
so it can live in YAML (`bars: {kind: volume, threshold: 250.5}`) or on a command line
(`parse_bar_spec("volume:250.5")`). `bar_spec_label` gives a canonical, file-name-safe label: two
specs that build the same bars get the same label ("time:60s" and "time:1m" are both "time-1m").
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator

from core.config import FrozenConfig, InvalidConfigError, format_validation_error
from core.errors import ConfigError
from core.time import parse_duration

# Largest first, so that the label of a duration uses the coarsest unit that divides it exactly.
_LABEL_UNITS = (("d", 86_400 * 10**9), ("h", 3_600 * 10**9), ("m", 60 * 10**9), ("s", 10**9),
                ("ms", 10**6), ("us", 10**3), ("ns", 1))


class TimeBars(FrozenConfig):
    """One bar per `every`-long UTC-aligned bucket that holds at least one trade."""

    kind: Literal["time"] = "time"
    every: str = "1m"

    @field_validator("every")
    @classmethod
    def _check_every(cls, v: str) -> str:
        parse_duration(v)  # raises ValueError with the accepted forms
        return v

    @property
    def every_ns(self) -> int:
        """Bucket length in nanoseconds."""
        return parse_duration(self.every)


class TickBars(FrozenConfig):
    """A bar closes on its `trades`-th trade."""

    kind: Literal["tick"] = "tick"
    trades: int = Field(gt=0)


class VolumeBars(FrozenConfig):
    """A bar closes on the trade that brings its base-asset volume to >= `threshold`."""

    kind: Literal["volume"] = "volume"
    threshold: float = Field(gt=0, allow_inf_nan=False)


class DollarBars(FrozenConfig):
    """A bar closes on the trade that brings its quote notional (sum price*qty) to >= `threshold`."""

    kind: Literal["dollar"] = "dollar"
    threshold: float = Field(gt=0, allow_inf_nan=False)


class DynamicVolumeBars(FrozenConfig):
    """Volume bars whose threshold for each UTC day is (mean daily volume of the trading days among
    the previous `lookback_days` calendar days) / `target_bars_per_day`.

    `initial_threshold` applies to a day with no trading day in its lookback window (the first day
    of the data, or after a long gap). When it is None such a day is an error (`DataError`) unless
    the builder was given prior daily volumes.
    """

    kind: Literal["dynamic_volume"] = "dynamic_volume"
    target_bars_per_day: int = Field(gt=0)
    lookback_days: int = Field(default=7, gt=0)
    initial_threshold: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class LargeTradeConfig(FrozenConfig):
    """Which trades count as large: size >= the `quantile` of the previous `window` trade sizes,
    recomputed every `refresh` trades. `window=0` disables the large-trade columns (they are 0)."""

    quantile: float = Field(default=0.95, ge=0.0, le=1.0)
    window: int = Field(default=10_000, ge=0)
    refresh: int = Field(default=1_000, gt=0)

    @property
    def enabled(self) -> bool:
        return self.window > 0


BarSpec = Annotated[TimeBars | TickBars | VolumeBars | DollarBars | DynamicVolumeBars,
                    Field(discriminator="kind")]

_BAR_SPEC_ADAPTER: TypeAdapter = TypeAdapter(BarSpec)

_ACCEPTED_FORMS = ('"time:<duration>" (e.g. time:1m, time:250ms), "tick:<trades>" (e.g. tick:1000), '
                   '"volume:<base units>" (e.g. volume:250.5), "dollar:<quote notional>" (e.g. dollar:1e6), '
                   '"dynamic:<bars per UTC day>" (e.g. dynamic:50)')


def bar_spec_from_dict(data: dict, source: str = "<dict>") -> BarSpec:
    """Build a spec from a mapping such as a YAML section; bad keys or values raise ConfigError."""
    try:
        return _BAR_SPEC_ADAPTER.validate_python(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None
    except InvalidConfigError as err:
        raise ConfigError(format_validation_error(err.validation_error, source)) from None


def parse_bar_spec(text: str) -> BarSpec:
    """Parse a CLI bar spec: "time:1m", "tick:1000", "volume:250.5", "dollar:1e6", "dynamic:50".

    Raises ConfigError naming the text and the accepted forms.
    """
    def bad(why: str) -> ConfigError:
        return ConfigError(f"invalid bar spec {text!r}: {why}; accepted forms: {_ACCEPTED_FORMS}")

    if not isinstance(text, str):
        raise bad(f"expected a string, got {type(text).__name__}")
    kind, sep, value = text.strip().partition(":")
    kind, value = kind.strip().lower(), value.strip()
    if not sep or not value:
        raise bad("expected <kind>:<value>")
    try:
        if kind == "time":
            parse_duration(value)
            return TimeBars(every=value)
        if kind == "tick":
            if not value.isdigit():
                raise bad(f"tick count must be a positive integer, got {value!r}")
            return TickBars(trades=int(value))
        if kind == "dynamic":
            if not value.isdigit():
                raise bad(f"bars per day must be a positive integer, got {value!r}")
            return DynamicVolumeBars(target_bars_per_day=int(value))
        if kind in ("volume", "dollar"):
            try:
                threshold = float(value)
            except ValueError:
                raise bad(f"threshold must be a number, got {value!r}") from None
            if not (math.isfinite(threshold) and threshold > 0):
                raise bad(f"threshold must be positive and finite, got {value!r}")
            return VolumeBars(threshold=threshold) if kind == "volume" else DollarBars(threshold=threshold)
    except InvalidConfigError as err:  # the model's own check, e.g. tick:0
        raise bad("; ".join(e["msg"] for e in err.validation_error.errors())) from None
    except ValueError as err:
        raise bad(str(err)) from None
    raise bad(f"unknown kind {kind!r}")


def _number_label(x: float) -> str:
    # repr is the shortest round-tripping form, so distinct thresholds never share a label.
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _duration_label(ns: int) -> str:
    for unit, size in _LABEL_UNITS:
        if ns % size == 0:
            return f"{ns // size}{unit}"
    raise AssertionError("unreachable: 1 ns divides every duration")


def bar_spec_label(spec: BarSpec) -> str:
    """Canonical file-name-safe label: "time-1m", "tick-1000", "volume-250.5", "dollar-1000000",
    "dynamic-50" (with "-lb<days>" / "-init<threshold>" when not default)."""
    if isinstance(spec, TimeBars):
        return f"time-{_duration_label(spec.every_ns)}"
    if isinstance(spec, TickBars):
        return f"tick-{spec.trades}"
    if isinstance(spec, VolumeBars):
        return f"volume-{_number_label(spec.threshold)}"
    if isinstance(spec, DollarBars):
        return f"dollar-{_number_label(spec.threshold)}"
    if isinstance(spec, DynamicVolumeBars):
        label = f"dynamic-{spec.target_bars_per_day}"
        if spec.lookback_days != 7:
            label += f"-lb{spec.lookback_days}"
        if spec.initial_threshold is not None:
            label += f"-init{_number_label(spec.initial_threshold)}"
        return label
    raise ConfigError(f"not a bar spec: {spec!r}")
