"""Base for configuration models: pydantic v2, frozen, unknown keys rejected, loaded from YAML.

A bad config raises `ConfigError` naming the key path, the value given and what was expected.
"""

from __future__ import annotations

import hashlib
import json
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import ConfigError

M = TypeVar("M", bound="FrozenConfig")

# Depth of FrozenConfig constructions in progress: pydantic builds nested models through their
# __init__, and only the outermost one may turn the error into ConfigError, so that the message
# keeps the full key path (markets.0.synth.tick_size), not one relative to an inner model.
_NESTING: ContextVar[int] = ContextVar("frozen_config_nesting", default=0)


class InvalidConfigError(ConfigError):
    """A config model was constructed with invalid values; keeps pydantic's error for re-formatting."""

    def __init__(self, message: str, validation_error: ValidationError):
        super().__init__(message)
        self.validation_error = validation_error


class FrozenConfig(BaseModel):
    """Frozen, unknown keys rejected; invalid values raise `ConfigError` (also on direct construction)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def __init__(self, **data: Any) -> None:
        token = _NESTING.set(_NESTING.get() + 1)
        try:
            super().__init__(**data)
        except ValidationError as err:
            if _NESTING.get() > 1:
                raise
            raise InvalidConfigError(format_validation_error(err, type(self).__name__), err) from None
        finally:
            _NESTING.reset(token)

    def config_hash(self) -> str:
        """Stable hash of the resolved config (stored with every run)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    errors = err.errors()
    item_locs = [tuple(e["loc"]) for e in errors]
    for e in errors:
        loc = tuple(e["loc"])
        # pydantic also reports "too short" for a list whose items failed: a consequence, not news.
        if e["type"] == "too_short" and any(o[: len(loc)] == loc and len(o) > len(loc) for o in item_locs):
            continue
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        value = e.get("input")
        value_s = repr(value)
        if len(value_s) > 80:
            value_s = value_s[:77] + "..."
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key} = {value_s}: unknown key (not part of this config)")
        elif e["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        else:
            lines.append(f"  {key} = {value_s}: {e['msg']}")
    return "\n".join(lines)


def build_config(model: type[M], data: dict[str, Any], source: str = "<dict>") -> M:
    """Validate `data` as `model`; errors name `source` (the file), each key path, value and expectation."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None
    except InvalidConfigError as err:
        raise ConfigError(format_validation_error(err.validation_error, source)) from None


def load_yaml_config(model: type[M], path: str | Path) -> M:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return build_config(model, data, str(path))
