"""Shared fixtures. Real market data is found through one setting: FLOWTRADER_DATA
(default: ../shared/data beside the repository). Tests needing it skip with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FLOWTRADER_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_data_path(*parts: str) -> Path:
    """Path of a file in the shared real-data folder; skips the calling test if it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data file not available: {p} (set FLOWTRADER_DATA to the shared data folder)")
    return p


@pytest.fixture
def shared_data():
    return shared_data_path
