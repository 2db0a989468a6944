"""The strategy registry: built-in and custom strategies by name, and their params from dicts/YAML.

`strategies/__init__.py` registers the built-ins; a custom strategy registers itself the same way
(`register(MyStrategy())`). Lookups of an unknown name raise `ConfigError` listing what exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.config import build_config
from core.errors import ConfigError
from strategies.base import Strategy, StrategyParams

_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add a strategy instance under its `name`; returns it.

    Registering another instance of the same class again is a no-op (module reloads); a different
    class under a taken name raises `ConfigError`.
    """
    if not isinstance(strategy, Strategy):
        raise ConfigError(f"register() needs a Strategy instance, got {type(strategy).__name__}")
    name = getattr(strategy, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"strategy {type(strategy).__name__} has no name")
    current = _REGISTRY.get(name)
    if current is not None and type(current) is not type(strategy):
        raise ConfigError(
            f"strategy name {name!r} is already registered by {type(current).__module__}.{type(current).__name__}"
        )
    _REGISTRY.setdefault(name, strategy)
    return _REGISTRY[name]


def get(name: str) -> Strategy:
    """The registered strategy called `name`; `ConfigError` listing the available ones otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown strategy {name!r}; available: {available()}") from None


def available() -> list[str]:
    """Registered strategy names, sorted."""
    return sorted(_REGISTRY)


def params_from_dict(name: str, data: dict[str, Any] | None, source: str = "<dict>") -> StrategyParams:
    """Validated params of strategy `name`; bad keys/values raise `ConfigError` naming `source` and
    the key path. Missing keys take their defaults."""
    strategy = get(name)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: params of strategy {name!r} must be a mapping, got {type(data).__name__}")
    return build_config(strategy.Params, data, source)


def load_strategy_yaml(path: str | Path) -> tuple[Strategy, StrategyParams]:
    """Read a strategy config file: `strategy: NAME` and an optional `params:` mapping."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read strategy config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping with 'strategy' and 'params'")
    unknown = sorted(set(data) - {"strategy", "params"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {unknown} (expected 'strategy' and 'params')")
    if "strategy" not in data:
        raise ConfigError(f"{path}: required key 'strategy' is missing; available: {available()}")
    name = data["strategy"]
    if not isinstance(name, str):
        raise ConfigError(f"{path}: strategy = {name!r} must be a name; available: {available()}")
    return get(name), params_from_dict(name, data.get("params"), source=str(path))
