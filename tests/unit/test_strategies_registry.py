"""Registry, params validation, input/output checks, shipped YAML configs, feature-config fit,
and a custom strategy plugged in through the same interface."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from core.config import load_yaml_config
from core.errors import ConfigError, DataError, SchemaError
from market.features.config import FeatureConfig
from strategies import (
    SIGNAL_SCHEMA,
    EmaCrossParams,
    FamilyParams,
    MomentumParams,
    RegimeParams,
    Strategy,
    StrategyParams,
    available,
    check_feature_config,
    get,
    load_strategy_yaml,
    params_from_dict,
    register,
    registry,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "strategies"


def test_available_and_get():
    assert available() == ["ema_cross", "orderflow_family", "orderflow_momentum", "vwap_reversion"]
    assert get("ema_cross").name == "ema_cross"


def test_unknown_name_lists_available():
    with pytest.raises(ConfigError) as err:
        get("orderflow_momentun")
    assert "orderflow_momentun" in str(err.value)
    for name in available():
        assert name in str(err.value)
    with pytest.raises(ConfigError, match="available"):
        params_from_dict("nope", {})


@pytest.mark.parametrize(
    "name,data,key",
    [
        ("orderflow_momentum", {"ofi_threshold": 1.5}, "ofi_threshold"),
        ("orderflow_momentum", {"min_confirmations": 4}, "min_confirmations"),
        ("orderflow_momentum", {"ofi_lookback": 0}, "ofi_lookback"),
        ("vwap_reversion", {"entry_quantile": 1.0}, "entry_quantile"),
        ("vwap_reversion", {"entry_window": 1}, "entry_window"),
        ("orderflow_family", {"momentum": {"ofi_threshold": -0.1}}, "momentum.ofi_threshold"),
        ("orderflow_family", {"regime": {"extreme_vol_ratio": 0}}, "regime.extreme_vol_ratio"),
        ("orderflow_family", {"weight_b_normal": 0}, "weight_b_normal"),
        ("ema_cross", {"slow_span": 1}, "slow_span"),
        ("ema_cross", {"fast_spam": 3}, "fast_spam"),
    ],
)
def test_params_bounds_name_the_key(name, data, key):
    with pytest.raises(ConfigError) as err:
        params_from_dict(name, data, source="test.yaml")
    assert key in str(err.value) and "test.yaml" in str(err.value)


def test_params_from_dict_defaults_and_values():
    assert params_from_dict("orderflow_momentum", {}) == MomentumParams()
    assert params_from_dict("orderflow_momentum", None) == MomentumParams()
    assert params_from_dict("ema_cross", {"fast_span": 5, "slow_span": 20}) == EmaCrossParams(fast_span=5, slow_span=20)
    with pytest.raises(ConfigError, match="fast_span"):
        EmaCrossParams(fast_span=48, slow_span=48)
    with pytest.raises(ConfigError, match="mapping"):
        params_from_dict("ema_cross", [1, 2])  # type: ignore[arg-type]


def test_shipped_configs_hold_the_defaults():
    for path, params in [("orderflow_momentum.yaml", MomentumParams()), ("family.yaml", FamilyParams()),
                         ("ema_cross.yaml", EmaCrossParams())]:
        strategy, loaded = load_strategy_yaml(CONFIGS / path)
        assert loaded == params and strategy.Params is type(params)
    strategy, loaded = load_strategy_yaml(CONFIGS / "vwap_reversion.yaml")
    assert strategy.name == "vwap_reversion" and loaded == strategy.Params()
    assert load_yaml_config(RegimeParams, CONFIGS / "vol_regime.yaml") == RegimeParams()


def test_strategy_yaml_errors(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("strategy: ema_cross\nparams:\n  fast_span: 50\n")
    with pytest.raises(ConfigError, match="fast_span"):
        load_strategy_yaml(bad)
    bad.write_text("strategy: ema_crosss\n")
    with pytest.raises(ConfigError, match="available"):
        load_strategy_yaml(bad)
    bad.write_text("strategy: ema_cross\nparam: {}\n")
    with pytest.raises(ConfigError, match="param"):
        load_strategy_yaml(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_strategy_yaml(tmp_path / "missing.yaml")


def feature_frame(**columns) -> pl.DataFrame:
    return pl.DataFrame({"ts_event": [1, 2, 3], **columns}, schema_overrides={"ts_event": pl.Int64})


def test_missing_columns_name_them():
    with pytest.raises(SchemaError) as err:
        get("vwap_reversion").signals(feature_frame(vwap_deviation=[0.0, 0.0, 0.0]), get("vwap_reversion").Params())
    msg = str(err.value)
    for col in ("ofi_ema10", "realized_vol_20", "sell_volume", "buy_volume"):
        assert col in msg
    assert "'vwap_deviation'" not in msg
    with pytest.raises(SchemaError, match="ts_event"):
        get("ema_cross").signals(pl.DataFrame({"close": [1.0]}), EmaCrossParams())


def test_bad_input_types_and_order():
    ema = get("ema_cross")
    with pytest.raises(SchemaError, match="close"):
        ema.signals(feature_frame(close=["a", "b", "c"]), EmaCrossParams())
    with pytest.raises(SchemaError, match="Int64"):
        ema.signals(pl.DataFrame({"ts_event": [1.0, 2.0], "close": [1.0, 2.0]}), EmaCrossParams())
    with pytest.raises(SchemaError, match="null"):
        ema.signals(pl.DataFrame({"ts_event": [1, None], "close": [1.0, 2.0]}), EmaCrossParams())
    with pytest.raises(DataError, match="decreases at row 3"):
        ema.signals(pl.DataFrame({"ts_event": [1, 2, 1], "close": [1.0, 2.0, 3.0]}), EmaCrossParams())
    with pytest.raises(DataError, match="not finite"):
        ema.signals(feature_frame(close=[1.0, float("nan"), 2.0]), EmaCrossParams())
    with pytest.raises(ConfigError, match="EmaCrossParams"):
        ema.signals(feature_frame(close=[1.0, 2.0, 3.0]), MomentumParams())
    # equal ts_event (tied trade-driven bars) is fine; integer columns are read as Float64
    out = ema.signals(pl.DataFrame({"ts_event": [1, 1, 2], "close": [1, 2, 3]}), EmaCrossParams())
    assert out.schema == SIGNAL_SCHEMA and out.height == 3


def test_empty_frame():
    out = get("orderflow_family").signals(
        pl.DataFrame(schema={"ts_event": pl.Int64, **{c: pl.Float64 for c in get("orderflow_family")
                                                     .required_features(FamilyParams())}}), FamilyParams())
    assert out.height == 0 and out.columns[-1] == "flatten"


def test_feature_config_fit():
    for name in available():
        s = get(name)
        check_feature_config(s, s.Params(), FeatureConfig())
    with pytest.raises(ConfigError) as err:
        check_feature_config(get("orderflow_family"), FamilyParams(),
                             FeatureConfig(cum_delta_slope_window=30, ofi_ema_spans=(5,), vwap_window=10))
    msg = str(err.value)
    assert "ofi_ema10" in msg and "cum_delta_slope_window" in msg and "vwap_window" in msg
    with pytest.raises(ConfigError, match="trade_intensity_z20"):
        check_feature_config(get("orderflow_momentum"), MomentumParams(), FeatureConfig(zscore_windows=(100,)))


class _Params(StrategyParams):
    level: float = 1.0


class _CloseAbove(Strategy):
    """A custom strategy: long while close is above a level (a test double of a user's strategy)."""

    name = "test_close_above"
    Params = _Params

    def __init__(self, strength: float = 1.0, nulls: bool = False):
        self.strength, self.nulls = strength, nulls

    def required_features(self, params):
        return ["close"]

    def warmup_bars(self, params):
        return 0

    def lookback_bars(self, params):
        return 1

    def compute(self, features, params):
        above = pl.col("close") > params.level
        out = features.select("ts_event", above.alias("enter_long"), pl.lit(False).alias("enter_short"),
                              (~above).alias("exit_long"), pl.lit(False).alias("exit_short"),
                              pl.lit(self.strength).alias("strength"), pl.lit(0.5).alias("confidence"))
        if self.nulls:
            out = out.with_columns(pl.lit(None, dtype=pl.Boolean).alias("exit_short"))
        return out


def test_custom_strategy_plugs_in(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register(_CloseAbove())
    assert "test_close_above" in available()
    s = get("test_close_above")
    params = params_from_dict("test_close_above", {"level": 2.0})
    out = s.signals(feature_frame(close=[1.0, 3.0, 2.0]), params)
    assert out.get_column("enter_long").to_list() == [False, True, False]
    assert out.get_column("exit_long").to_list() == [True, False, True]
    register(_CloseAbove())  # same class again: no-op
    with pytest.raises(ConfigError, match="already registered"):
        register(type("Other", (_CloseAbove,), {})())
    with pytest.raises(ConfigError, match="Strategy instance"):
        register("ema_cross")  # type: ignore[arg-type]


def test_output_is_checked():
    with pytest.raises(SchemaError, match="strength"):
        _CloseAbove(strength=2.0).signals(feature_frame(close=[1.0, 3.0, 2.0]), _Params())
    with pytest.raises(SchemaError, match="null"):
        _CloseAbove(nulls=True).signals(feature_frame(close=[1.0, 3.0, 2.0]), _Params())
