"""market.synth generator: schema, determinism, invariants, statistical realism, config errors."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import build_config, load_yaml_config
from core.errors import ConfigError
from core.time import NS_PER_DAY, NS_PER_HOUR, NS_PER_MIN, parse_time
from market.schema import AGG_TRADES_SCHEMA
from market.synth import SYNTHETIC_PROVENANCE, SynthConfig, generate_market, generate_trades, provenance
from market.synth import generator as gen
from market.synth.rng import next_u64_nb, seed_state, seed_state_nb

MASK = (1 << 64) - 1


def cfg(**kw) -> SynthConfig:
    base = {"seed": 11, "n_trades": 5_000}
    base.update(kw)
    return build_config(SynthConfig, base)


def assert_invariants(df: pl.DataFrame, c: SynthConfig) -> None:
    assert dict(df.schema) == AGG_TRADES_SCHEMA
    n = df.height
    assert np.array_equal(df["id"].to_numpy(), np.arange(c.first_id, c.first_id + n))
    ts = df["ts_event"].to_numpy()
    assert np.all(np.diff(ts) >= 0)
    assert df["ts_init"].equals(df["ts_event"].alias("ts_init"))
    assert ts[0] >= c.start
    for col, step in (("price", c.tick_size), ("quantity", c.lot_size)):
        units = df[col].to_numpy() / step
        assert np.all(np.abs(units - np.rint(units)) < 1e-6), col
        assert np.all(np.rint(units) >= 1), col
    first = df["first_trade_id"].to_numpy()
    last = df["last_trade_id"].to_numpy()
    assert first[0] == c.first_fill_id
    assert np.all(last >= first)
    assert np.array_equal(first[1:], last[:-1] + 1)
    # every maker fill is at least one lot
    assert np.all(last - first + 1 <= np.rint(df["quantity"].to_numpy() / c.lot_size))


# --- the RNG against a plain-Python reference of xoshiro256** / splitmix64 ---------------------------

def _py_xoshiro(state: list[int], k: int) -> list[int]:
    s = list(state)
    rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & MASK  # noqa: E731
    out = []
    for _ in range(k):
        out.append((rotl((s[1] * 5) & MASK, 7) * 9) & MASK)
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
    return out


def test_rng_matches_reference_xoshiro256starstar():
    s = seed_state(12345)
    ref = _py_xoshiro([int(x) for x in s], 20)
    got = [int(next_u64_nb(s)) for _ in range(20)]
    assert got == ref
    # splitmix64 seeding: known first output for seed 0 from the reference C implementation
    assert int(seed_state(0)[0]) == 0xE220A8397B1DCDAF
    s2 = np.empty(4, dtype=np.uint64)
    seed_state_nb(np.uint64(987654321), s2)
    assert np.array_equal(s2, seed_state(987654321))


# --- schema, determinism, modes --------------------------------------------------------------------

def test_schema_and_invariants_default_market():
    c = cfg(n_trades=30_000, first_id=1000, first_fill_id=50)
    df = generate_trades(c)
    assert df.height == 30_000
    assert_invariants(df, c)
    assert df["is_buyer_maker"].sum() not in (0, df.height)


def test_same_seed_bit_identical_other_seed_differs():
    a = generate_trades(cfg())
    b = generate_trades(cfg())
    assert a.equals(b)
    c = generate_trades(cfg(seed=12))
    assert not a["price"].equals(c["price"])
    assert not a["ts_event"].equals(c["ts_event"])


def test_chunked_generation_equals_single_run(monkeypatch):
    c = cfg(duration="3h", n_trades=None, base_rate=3.0)
    whole = generate_market(c)
    monkeypatch.setattr(gen, "_expected_trades", lambda _c: 1_000)
    monkeypatch.setattr(gen, "_expected_minutes", lambda _c: 7)
    monkeypatch.setattr(gen, "_CHUNK", 777)
    pieces = generate_market(c)
    assert whole.trades.height > 5_000
    assert whole.trades.equals(pieces.trades)
    assert whole.regimes.equals(pieces.regimes)


def test_duration_mode_stays_inside_span_and_regimes_cover_minutes():
    c = cfg(duration="2h", n_trades=None, start="2024-03-01T10:30:15", base_rate=2.0)
    m = generate_market(c)
    ts = m.trades["ts_event"].to_numpy()
    start = parse_time("2024-03-01T10:30:15")
    assert ts.min() >= start and ts.max() < start + 2 * NS_PER_HOUR
    assert 2 * 3600 * 2.0 * 0.3 < m.trades.height < 2 * 3600 * 2.0 * 4
    starts = m.regimes["ts_start"].to_numpy()
    assert starts[0] == start
    assert np.all(np.diff(starts[1:]) == NS_PER_MIN) and starts[1] % NS_PER_MIN == 0
    assert starts[1] - start < NS_PER_MIN
    assert len(starts) == 121  # the partial first minute, 119 whole minutes, the partial last one
    assert set(m.regimes["regime_name"].unique()) <= {"calm", "normal", "turbulent"}


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**64 - 1),
    tick=st.sampled_from([0.1, 0.01, 0.001, 0.5, 0.25]),
    lot=st.sampled_from([1.0, 0.1, 0.001, 5.0]),
    spread=st.integers(1, 5),
    n=st.integers(1, 3_000),
    tail=st.floats(1.2, 3.0),
)
def test_invariants_hold_for_any_seed_and_grid(seed, tick, lot, spread, n, tail):
    c = build_config(SynthConfig, {
        "seed": seed, "n_trades": n, "tick_size": tick, "lot_size": lot, "spread_ticks": spread,
        "initial_price": 1000 * tick * spread, "sizes": {"median": 3 * lot, "tail_index": tail},
    })
    df = generate_trades(c)
    assert df.height == n
    assert_invariants(df, c)
    # the first trade prints at the initial mid's bid or ask
    first_units = df["price"][0] / tick
    assert abs(first_units - c.initial_price / tick) <= spread / 2 + 1


# --- statistical realism (generous bounds, ~200k trades each) -------------------------------------

@pytest.fixture(scope="module")
def market_2d():
    c = build_config(SynthConfig, {"seed": 3, "duration": "2d", "base_rate": 1.2})
    return c, generate_market(c)


def test_sample_size_is_about_200k(market_2d):
    _, m = market_2d
    assert 100_000 < m.trades.height < 400_000


def test_arrivals_cluster_but_poisson_control_does_not(market_2d):
    _, m = market_2d
    d = np.diff(m.trades["ts_event"].to_numpy()).astype(np.float64)
    assert d.std() / d.mean() > 1.5
    flat = build_config(SynthConfig, {
        "seed": 3, "n_trades": 100_000, "hawkes_alpha": 0.0, "hour_profile": [1.0] * 24,
        "regimes": {"rate_multiplier": [1.0, 1.0, 1.0]},
    })
    d0 = np.diff(generate_trades(flat)["ts_event"].to_numpy()).astype(np.float64)
    assert 0.95 < d0.std() / d0.mean() < 1.05


def test_sizes_are_heavy_tailed_with_configured_tail_index(market_2d):
    c, m = market_2d
    q = m.trades["quantity"].to_numpy()
    x = q - q.mean()
    assert (x**4).mean() / (x**2).mean() ** 2 > 50  # a normal has 3
    s = np.sort(q)[::-1]
    k = len(s) // 200
    hill = 1.0 / np.mean(np.log(s[:k] / s[k]))
    assert 1.4 < hill < 2.4, hill  # configured tail index 1.8


def _per_minute(m) -> pl.DataFrame:
    t = m.trades.with_columns(
        (pl.col("ts_event") // NS_PER_MIN).alias("minute"),
        pl.when(pl.col("is_buyer_maker")).then(-pl.col("quantity")).otherwise(pl.col("quantity")).alias("signed"),
    )
    mins = t.group_by("minute").agg(pl.col("price").last().alias("close"), pl.col("signed").sum().alias("ofi"))
    mins = mins.sort("minute").with_columns(pl.col("close").log().diff().alias("ret"))
    reg = m.regimes.with_columns((pl.col("ts_start") // NS_PER_MIN).alias("minute")).group_by("minute").agg(
        pl.col("regime").last())
    return mins.join(reg, on="minute").drop_nulls()


def test_order_flow_imbalance_moves_prices(market_2d):
    mins = _per_minute(market_2d[1])
    assert np.corrcoef(mins["ofi"].to_numpy(), mins["ret"].to_numpy())[0, 1] > 0.1


def test_order_flow_signs_are_persistent(market_2d):
    sgn = np.where(market_2d[1].trades["is_buyer_maker"].to_numpy(), -1.0, 1.0)
    for lag, floor in ((1, 0.1), (10, 0.05), (100, 0.01)):
        assert np.mean(sgn[:-lag] * sgn[lag:]) > floor, lag


def test_realized_volatility_rises_with_regime(market_2d):
    c, m = market_2d
    vol = _per_minute(m).group_by("regime").agg(pl.col("ret").std(), pl.len()).sort("regime")
    assert vol["regime"].to_list() == [0, 1, 2] and vol["len"].min() >= 30
    s = vol["ret"].to_numpy()
    assert s[0] < s[1] < s[2]
    # the diffusive part alone: daily_vol / sqrt(1440) per minute; impact adds on top
    expected = np.asarray(c.regimes.daily_vol) / np.sqrt(1440)
    assert np.all(s > 0.8 * expected) and np.all(s < 2.5 * expected)


def test_hour_of_day_intensity_follows_profile():
    profile = [0.5] * 8 + [1.0] * 8 + [2.0] * 8
    c = build_config(SynthConfig, {
        "seed": 5, "duration": "4d", "base_rate": 0.6, "hour_profile": profile,
        "regimes": {"rate_multiplier": [1.0, 1.0, 1.0]},
    })
    df = generate_trades(c)
    hours = df.select(((pl.col("ts_event") // NS_PER_HOUR) % 24).alias("h")).group_by("h").len().sort("h")
    counts = hours["len"].to_numpy().astype(np.float64)
    assert len(counts) == 24
    assert np.corrcoef(counts, profile)[0, 1] > 0.85
    third = counts.reshape(3, 8).sum(axis=1)
    assert 1.5 < third[1] / third[0] < 2.6 and 1.5 < third[2] / third[1] < 2.6
    # mean rate: base_rate averaged over the day (self-excitation does not change it)
    assert 0.8 < df.height / (4 * NS_PER_DAY / 1e9) / 0.6 < 1.2


# --- configuration errors --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "override, needle",
    [
        ({"hawkes_alpha": 5.0, "hawkes_beta": 5.0}, "hawkes_alpha / hawkes_beta"),
        ({"hawkes_alpha": 9.0}, "branching ratio"),
        ({"n_trades": None}, "exactly one of duration and n_trades"),
        ({"duration": "1d"}, "exactly one of duration and n_trades"),
        ({"tick_size": -0.01}, "tick_size"),
        ({"lot_size": 0}, "lot_size"),
        ({"initial_price": 0.5}, "initial_price / tick_size"),
        ({"start": "yesterday"}, "start"),
        ({"hour_profile": [1.0] * 23}, "hour_profile"),
        ({"spread_ticks": 0}, "spread_ticks"),
        ({"sizes": {"tail_index": 0.9}}, "sizes.tail_index"),
        ({"sizes": {"median": -1}}, "sizes.median"),
        ({"regimes": {"transition_per_minute": [[0.5, 0.4, 0.0], [0, 1, 0], [0, 0, 1]]}}, "sums to"),
        ({"regimes": {"names": ["a", "b"], "daily_vol": [1, 1], "rate_multiplier": [1, 1],
                      "transition_per_minute": [[1, 0], [0, 1]], "initial": "a"}}, "at least 3"),
        ({"regimes": {"daily_vol": [0.1, 0.2]}}, "regimes.daily_vol"),
        ({"regimes": {"initial": "panic"}}, "regimes.initial"),
        ({"flow": {"metaorder_share": 1.0}}, "flow.metaorder_share"),
        ({"bogus": 1}, "bogus"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_config_raises_config_error_naming_the_key(override, needle):
    data = {"seed": 1, "n_trades": 10}
    data.update(override)
    with pytest.raises(ConfigError) as e:
        build_config(SynthConfig, data)
    assert needle in str(e.value)


def test_direct_construction_raises_config_error_too():
    with pytest.raises(ConfigError, match="hawkes_alpha / hawkes_beta"):
        SynthConfig(seed=1, n_trades=10, hawkes_alpha=10.0, hawkes_beta=1.0)


def test_yaml_config_with_date_start(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("seed: 4\nsymbol: ABCUSDT\nstart: 2024-02-03\nduration: 30m\nsizes:\n  median: 2.5\n")
    c = load_yaml_config(SynthConfig, p)
    assert c.start == parse_time("2024-02-03") and c.duration == 30 * NS_PER_MIN
    assert c.sizes.median == 2.5


def test_provenance_marks_and_regenerates():
    c = cfg(n_trades=2_000)
    p = provenance(c)
    assert p["synthetic"] == "true" and SYNTHETIC_PROVENANCE["synthetic"] == "true"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in p.items())
    assert p["seed"] == "11" and p["config_hash"] == c.config_hash()
    again = SynthConfig.model_validate(json.loads(p["config"]))
    assert generate_trades(again).equals(generate_trades(c))
    assert provenance(7)["seed"] == "7" and provenance(7)["method"] == "synthesize_from_klines"
    with pytest.raises(TypeError):
        provenance("7")
