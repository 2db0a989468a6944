"""Config loading: a bad config names the key, the value and what was expected."""

from __future__ import annotations

import pytest
from pydantic import Field

from core.config import FrozenConfig, build_config, load_yaml_config
from core.errors import ConfigError


class Inner(FrozenConfig):
    window: int = Field(20, gt=0)


class Outer(FrozenConfig):
    name: str
    inner: Inner = Inner()
    ratio: float = 0.5


def test_valid_yaml_loads_and_is_frozen(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\ninner: {window: 5}\n")
    cfg = load_yaml_config(Outer, p)
    assert cfg.name == "x" and cfg.inner.window == 5 and cfg.ratio == 0.5
    with pytest.raises(Exception):
        cfg.name = "y"  # frozen


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\ninner: {windw: 5}\n")
    with pytest.raises(ConfigError) as e:
        load_yaml_config(Outer, p)
    msg = str(e.value)
    assert "inner.windw" in msg and "unknown key" in msg and str(p) in msg


def test_bad_value_names_key_value_and_expectation():
    with pytest.raises(ConfigError) as e:
        build_config(Outer, {"name": "x", "inner": {"window": -3}}, "test.yaml")
    msg = str(e.value)
    assert "inner.window = -3" in msg and "greater than 0" in msg and "test.yaml" in msg


def test_missing_required_key():
    with pytest.raises(ConfigError, match=r"name: required key is missing"):
        build_config(Outer, {}, "x")


def test_not_yaml_and_not_mapping(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml_config(Outer, p)
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_yaml_config(Outer, p)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_yaml_config(Outer, tmp_path / "missing.yaml")


def test_config_hash_is_stable_and_sensitive():
    a = build_config(Outer, {"name": "x"})
    b = build_config(Outer, {"name": "x", "ratio": 0.5})
    c = build_config(Outer, {"name": "x", "ratio": 0.6})
    assert a.config_hash() == b.config_hash() != c.config_hash()


class Leaf(FrozenConfig):
    x: int = Field(1, gt=0)


class Branch(FrozenConfig):
    leaves: tuple[Leaf, ...] = Field(min_length=1)


def test_nested_errors_keep_the_full_key_path_and_every_error():
    with pytest.raises(ConfigError) as e:
        build_config(Branch, {"leaves": [{"x": -1}, {"y": 2}]}, "tree.yaml")
    msg = str(e.value)
    assert "tree.yaml" in msg
    assert "leaves.0.x = -1: Input should be greater than 0" in msg
    assert "leaves.1.y = 2: unknown key" in msg
    assert "too_short" not in msg and "at least 1 item" not in msg


def test_direct_construction_raises_config_error_with_paths():
    with pytest.raises(ConfigError, match=r"leaves\.0\.x = 0"):
        Branch(leaves=[{"x": 0}])
    with pytest.raises(ConfigError, match="at least 1 item"):
        Branch(leaves=[])
