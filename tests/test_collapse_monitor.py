"""The consult-collapse monitor (DESIGN §8): its two signals, their windows, and when it prints."""

from __future__ import annotations

import math

from agents.metrics import CollapseMonitor, split_by_consult


def _feed(monitor: CollapseMonitor, records: list[dict], total: int) -> list:
    return [monitor.update(r, step=i, total_steps=total) for i, r in enumerate(records)]


def _rec(consult: float, p: float, **extra: float) -> dict:
    return {"consult_rate": consult, "p_t": p, **extra}


def test_rising_consult_rate_while_p_falls_is_flagged():
    mon = CollapseMonitor(window=3)
    recs = [_rec(0.3, 1.0 - 0.1 * i) for i in range(3)] + [_rec(0.6, 0.6 - 0.1 * i) for i in range(3)]
    signals = _feed(mon, recs, total=100)
    assert [s.consult_rising for s in signals] == [False] * 5 + [True]
    assert any("consult rate is rising while p(t) falls" in w for w in mon.new_warnings)


def test_falling_consult_rate_or_constant_p_is_not_flagged():
    weaning = [_rec(0.6 - 0.05 * i, 1.0 - 0.1 * i) for i in range(8)]
    assert not any(s.consult_rising for s in _feed(CollapseMonitor(window=3), weaning, total=100))
    # the consult rate rises but p(t) is constant (no annealing): nothing to warn about
    constant_p = [_rec(0.1 * i, 1.0) for i in range(8)]
    assert not any(s.consult_rising for s in _feed(CollapseMonitor(window=3), constant_p, total=100))
    # a rise smaller than min_rise is noise
    small = [_rec(0.30, 1.0)] * 3 + [_rec(0.32, 0.5)] * 3
    assert not any(s.consult_rising for s in _feed(CollapseMonitor(window=3, min_rise=0.05), small, total=100))


def _lag_rec(acc_c: float, acc_u: float, n_c: int = 10, n_u: int = 10) -> dict:
    return {
        "consult_rate": 0.5,
        "p_t": 0.0,
        "accuracy_consulted": acc_c,
        "accuracy_unconsulted": acc_u,
        "episodes_consulted": float(n_c),
        "episodes_unconsulted": float(n_u),
    }


def test_unconsulted_lag_only_late_in_training_and_with_enough_episodes():
    mon = CollapseMonitor(window=2, late_frac=0.5, min_gap=0.15, min_episodes=16)
    signals = _feed(mon, [_lag_rec(0.8, 0.2)] * 10, total=10)
    assert [s.unconsulted_lag for s in signals] == [False] * 4 + [True] * 6  # from step 5 of 10 on
    few = CollapseMonitor(window=2, late_frac=0.0, min_episodes=16)
    assert not any(s.unconsulted_lag for s in _feed(few, [_lag_rec(0.8, 0.2, n_c=3)] * 6, total=6))
    close = CollapseMonitor(window=2, late_frac=0.0)
    assert not any(s.unconsulted_lag for s in _feed(close, [_lag_rec(0.5, 0.45)] * 6, total=6))


def test_lag_pools_episodes_not_step_means():
    # step 1: 1 consulted episode, correct; step 2: 30 consulted, 40 % correct -> pooled 0.42, not 0.7
    mon = CollapseMonitor(window=2, late_frac=0.0, min_gap=0.15, min_episodes=16)
    recs = [_lag_rec(1.0, 0.3, n_c=1, n_u=20), _lag_rec(0.4, 0.3, n_c=30, n_u=20)]
    assert not _feed(mon, recs, total=2)[-1].unconsulted_lag


def test_warning_printed_once_when_a_signal_turns_on():
    mon = CollapseMonitor(window=2, late_frac=0.0, min_episodes=1)
    printed = []
    for i in range(6):
        mon.update(_lag_rec(0.9, 0.1), step=i, total_steps=6)
        printed += mon.new_warnings
    assert len(printed) == 1 and "less accurate" in printed[0]
    mon.update(_lag_rec(0.5, 0.5), step=6, total_steps=6)  # off again, then on again: printed again
    mon.update(_lag_rec(0.5, 0.5), step=7, total_steps=6)
    assert not mon.active.unconsulted_lag
    mon.update(_lag_rec(0.9, 0.1), step=8, total_steps=6)
    assert len(mon.new_warnings) == 1


def test_split_by_consult_handles_empty_sides():
    out = split_by_consult([True, False], [1.0, 0.0], [False, False])
    assert math.isnan(out["accuracy_consulted"]) and out["episodes_consulted"] == 0.0
    assert out["accuracy_unconsulted"] == 0.5 and out["reward_unconsulted"] == 0.5
