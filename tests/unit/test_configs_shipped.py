"""Every YAML shipped in configs/ loads into its model, and the demo config describes what the README says."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from market.bars.spec import DynamicVolumeBars
from market.config import DemoConfig, PipelineConfig, load_demo_config, load_pipeline_config
from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"


def test_market_yaml_loads():
    cfg = load_pipeline_config(CONFIGS / "market.yaml")
    assert isinstance(cfg, PipelineConfig)
    assert isinstance(cfg.bars, DynamicVolumeBars) and cfg.bars.lookback_days == 7
    assert cfg.higher_timeframe is not None and cfg.higher_timeframe.every == "1h"


def test_demo_yaml_loads_two_seeded_markets():
    cfg = load_demo_config(CONFIGS / "demo.yaml")
    assert isinstance(cfg, DemoConfig)
    assert [m.synth.symbol for m in cfg.markets] == ["SYNBTCUSDT", "SYNETHUSDT"]
    assert len({m.synth.seed for m in cfg.markets}) == 2


def test_typo_in_a_shipped_config_is_named(tmp_path):
    text = (CONFIGS / "market.yaml").read_text().replace("target_bars_per_day", "target_bar_per_day")
    p = tmp_path / "market.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_pipeline_config(p)
    assert "bars.dynamic_volume.target_bar_per_day" in str(e.value) or "target_bar_per_day" in str(e.value)


def test_demo_rejects_repeated_symbols(tmp_path):
    p = tmp_path / "d.yaml"
    p.write_text("markets:\n  - synth: {seed: 1, symbol: AUSDT, duration: 1h}\n"
                 "  - synth: {seed: 2, symbol: AUSDT, duration: 1h}\n")
    with pytest.raises(ConfigError, match="repeated: \\['AUSDT'\\]"):
        load_demo_config(p)
