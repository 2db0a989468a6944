"""docs/features.md documents every feature column with the warm-up the code declares."""

from __future__ import annotations

from pathlib import Path

from market.features import FeatureConfig, FeatureEngine

DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def _feature_table() -> dict[str, list[str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Feature columns", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 5, f"malformed table row: {line}"
        name = cells[0].strip("`")
        assert name not in rows, f"{name} documented twice"
        rows[name] = cells
    return rows


def test_every_column_documented_in_order_with_code_warmup():
    table = _feature_table()
    warm = FeatureEngine(FeatureConfig()).warmup_bars()
    assert list(table) == list(warm)
    mismatched = {n: (table[n][3], w) for n, w in warm.items() if table[n][3] != str(w)}
    assert not mismatched, f"docs warm-up (doc, code) disagree: {mismatched}"


def test_every_row_has_formula_parameters_and_nan_rule():
    for name, (_, formula, params, _, nan_rule) in _feature_table().items():
        assert formula and params and nan_rule, name
