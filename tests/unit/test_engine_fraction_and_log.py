"""Fraction sizing resolves at the fill price (spot never spends more cash than it has), and the
trading-state log is drained between chunks so long runs keep every change."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import EngineSettings
from risk.state import TradingStateConfig
from tests.unit.test_engine_scenarios import EQUITY0, SPOT, Scenario, risk_config, venue_config

FRACTION = EngineSettings(sizing="fraction", fraction=1.0, risk_rules=False, stops=False, cap_by_volume=False)


def test_spot_all_in_after_a_gap_up_buys_what_the_wallet_pays_for_at_the_fill():
    s = Scenario(6)
    s.el[0] = True
    s.c[0] = 100.0
    s.bar(1, 110.0, 111.0, 109.0, 110.0)  # gaps up 10 % after the decision
    s.o[2:] = s.h[2:] = s.lo[2:] = s.c[2:] = 110.0
    run = s.run(instrument=SPOT, engine=FRACTION, venue=venue_config(slippage_bps=0.0, impact_coef=0.0))
    f = run.result.fills.row(0, named=True)
    expect = np.floor(EQUITY0 / (110.0 * 1.0004) / 0.001 + 1e-9) * 0.001  # lot step 0.001, at the fill price
    assert f["price"] == 110.0 and f["qty"] == pytest.approx(expect, abs=1e-12)
    cash_after = EQUITY0 - f["qty"] * 110.0 - f["fee"]
    assert cash_after >= 0.0


def test_many_state_changes_are_all_kept_across_chunks():
    n = 1000
    s = Scenario(n)
    s.flatten[::2] = True  # FLATTEN on even bars, ACTIVE again on odd bars: 1000 changes
    risk = risk_config().model_copy(update={"trading_state": TradingStateConfig(log_capacity=64)})
    run = s.run(risk=risk)
    sc = run.result.state_changes
    assert sc.height == n
    assert sc["ts_event"].is_sorted() and (sc["to_state"].to_numpy()[::2] == 3).all()


def test_margin_use_above_the_threshold_reduces_the_position_automatically():
    """10x notional on 20x leverage, stops off; a 9.2 % drop takes the margin ratio (maintenance
    margin / margin balance) above 0.5 without reaching liquidation → REDUCING at that close → half
    the position sold at the next open with Reason.REDUCE_MARGIN."""
    from core.enums import Reason, TradingState
    from execution import MarginConfig
    from tests.unit.test_engine_scenarios import BRACKETS, sizing, stops

    s = Scenario(10)
    s.el[3] = True
    s.atr[:] = 0.02
    s.bar(5, 99.0, 99.0, 90.6, 90.8)
    s.o[6:] = s.h[6:] = s.lo[6:] = s.c[6:] = 90.8
    risk = risk_config(sizing_cfg=sizing(risk_per_trade=0.05, max_position_pct=10.0, max_same_direction_pct=20.0,
                                         max_capital_in_use=20.0, max_loss_at_stop_pct=0.03),
                       stop_cfg=stops())
    venue = venue_config(slippage_bps=0.0, impact_coef=0.0,
                         margin=MarginConfig(mode="cross", default_leverage=20.0, default_brackets=BRACKETS))
    run = s.run(engine=EngineSettings(stops=False, cap_by_volume=False), risk=risk, venue=venue)
    fills = run.result.fills
    entry_qty = fills["qty"][0]
    assert entry_qty * 100.0 == pytest.approx(10 * EQUITY0, rel=1e-3)  # the 10x position cap binds
    sc = run.result.state_changes.filter(run.result.state_changes["to_state"] == int(TradingState.REDUCING))
    assert sc.height >= 1 and sc["ts_event"][0] == int(s.ts_event[5]) and sc["reason"][0] == int(Reason.REDUCE_MARGIN)
    reduce = fills.filter(fills["reason"] == int(Reason.REDUCE_MARGIN))
    assert reduce["ts_event"][0] == int(s.ts_open[6]) and reduce["qty"][0] == pytest.approx(entry_qty / 2, abs=1e-3)
    assert not (fills["reason"] == int(Reason.LIQUIDATION)).any()


def test_margin_ratio_is_recorded_every_bar():
    """The per-bar margin ratio the state machine sees is part of the run (0 while flat)."""
    from execution import MarginConfig
    from tests.unit.test_engine_scenarios import BRACKETS

    s = Scenario(8)
    s.el[2] = True
    run = s.run(venue=venue_config(margin=MarginConfig(mode="cross", default_leverage=5.0,
                                                       default_brackets=BRACKETS)))
    mr = run.margin["margin_ratio"].to_numpy()
    assert run.margin.height == 8 and (mr[:3] == 0.0).all()
    qty = run.result.fills["qty"][0]
    # held from bar 3: maintenance = notional·0.4 % (first bracket, cum 0) over equity at each close
    eq = run.result.equity["equity"].to_numpy()
    expect = qty * 100.0 * 0.004 / eq[3]
    assert mr[3] == pytest.approx(expect, rel=1e-9)
