"""Bar specs: CLI strings, labels, config validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.errors import ConfigError
from market.bars import (
    DollarBars,
    DynamicVolumeBars,
    LargeTradeConfig,
    TickBars,
    TimeBars,
    VolumeBars,
    bar_spec_from_dict,
    bar_spec_label,
    parse_bar_spec,
)


@pytest.mark.parametrize("text, expected, label", [
    ("time:1m", TimeBars(every="1m"), "time-1m"),
    ("time:60s", TimeBars(every="60s"), "time-1m"),
    ("time:250ms", TimeBars(every="250ms"), "time-250ms"),
    ("time:90m", TimeBars(every="90m"), "time-90m"),
    ("time:1d", TimeBars(every="1d"), "time-1d"),
    ("tick:1000", TickBars(trades=1000), "tick-1000"),
    ("volume:250.5", VolumeBars(threshold=250.5), "volume-250.5"),
    ("volume:10", VolumeBars(threshold=10.0), "volume-10"),
    ("dollar:1e6", DollarBars(threshold=1_000_000.0), "dollar-1000000"),
    (" Dollar : 2.5e5 ", DollarBars(threshold=250_000.0), "dollar-250000"),
    ("dynamic:50", DynamicVolumeBars(target_bars_per_day=50), "dynamic-50"),
])
def test_parse_and_label(text, expected, label):
    spec = parse_bar_spec(text)
    assert spec == expected
    assert type(spec) is type(expected)
    assert bar_spec_label(spec) == label


def test_dynamic_label_names_non_default_fields():
    spec = DynamicVolumeBars(target_bars_per_day=20, lookback_days=3, initial_threshold=12.5)
    assert bar_spec_label(spec) == "dynamic-20-lb3-init12.5"


def test_distinct_thresholds_get_distinct_labels():
    assert bar_spec_label(VolumeBars(threshold=0.1)) == "volume-0.1"
    assert bar_spec_label(VolumeBars(threshold=0.1 + 1e-12)) != "volume-0.1"


@pytest.mark.parametrize("text", [
    "", "volume", "volume:", ":5", "candles:5", "tick:0", "tick:-3", "tick:1.5", "tick:abc",
    "volume:-1", "volume:0", "volume:nan", "volume:inf", "volume:abc", "dollar:-1e6",
    "time:0m", "time:5", "time:1y", "time:m", "dynamic:0", "dynamic:2.5", "dynamic:x",
])
def test_bad_spec_strings_raise_config_error_naming_text_and_forms(text):
    with pytest.raises(ConfigError) as err:
        parse_bar_spec(text)
    msg = str(err.value)
    assert repr(text) in msg
    assert "accepted forms" in msg and "dynamic:50" in msg


def test_non_string_spec_is_rejected():
    with pytest.raises(ConfigError):
        parse_bar_spec(5)  # type: ignore[arg-type]


def test_spec_from_dict_discriminates_and_rejects_unknown_keys():
    assert bar_spec_from_dict({"kind": "volume", "threshold": 3}) == VolumeBars(threshold=3.0)
    assert bar_spec_from_dict({"kind": "time", "every": "5m"}) == TimeBars(every="5m")
    with pytest.raises(ConfigError, match="thresh"):
        bar_spec_from_dict({"kind": "volume", "thresh": 3})
    with pytest.raises(ConfigError):
        bar_spec_from_dict({"kind": "renko", "size": 3})


@pytest.mark.parametrize("factory", [
    lambda: TimeBars(every="0s"),
    lambda: TimeBars(every="fast"),
    lambda: TickBars(trades=0),
    lambda: VolumeBars(threshold=0.0),
    lambda: VolumeBars(threshold=float("inf")),
    lambda: VolumeBars(threshold=float("nan")),
    lambda: DollarBars(threshold=-5.0),
    lambda: DynamicVolumeBars(target_bars_per_day=0),
    lambda: DynamicVolumeBars(target_bars_per_day=5, lookback_days=0),
    lambda: DynamicVolumeBars(target_bars_per_day=5, initial_threshold=0.0),
    lambda: LargeTradeConfig(quantile=1.5),
    lambda: LargeTradeConfig(window=-1),
    lambda: LargeTradeConfig(refresh=0),
    lambda: VolumeBars(threshold=1.0, extra=2),
])
def test_invalid_models_are_rejected(factory):
    with pytest.raises(ConfigError):
        factory()


def test_specs_are_frozen_and_hashable():
    spec = VolumeBars(threshold=2.0)
    with pytest.raises(ValidationError):
        spec.threshold = 3.0  # type: ignore[misc]
    assert spec.config_hash() == VolumeBars(threshold=2.0).config_hash()
    assert TimeBars(every="2m").every_ns == 120 * 10**9
    assert LargeTradeConfig(window=0).enabled is False
