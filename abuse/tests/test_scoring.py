"""The scoring math and its behaviour on simulated traffic (simulated time, no sleeping)."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from abuse.scoring import EwmaState, Thresholds, score, spread, verdict

ALPHA = 0.3
THRESHOLDS = Thresholds(z_flag=3.0, z_block=6.0, warmup_intervals=6, min_rate=1.0)
INTERVAL = 10  # seconds


def run(rates: list[float]) -> list[str]:
    state, verdicts = EwmaState(), []
    for rate in rates:
        scored = score(state, rate, ALPHA)
        verdicts.append(verdict(scored, state, rate, THRESHOLDS))
        state = scored.state
    return verdicts


@given(st.lists(st.floats(min_value=0, max_value=10_000, allow_nan=False), min_size=1, max_size=60))
def test_ewma_mean_and_variance_match_a_reference_computation(rates: list[float]) -> None:
    state = EwmaState()
    for rate in rates:
        state = score(state, rate, ALPHA).state
    # Reference: the textbook recurrences, written out independently.
    mean, variance = rates[0], 0.0
    for rate in rates[1:]:
        diff = rate - mean
        mean = (1 - ALPHA) * mean + ALPHA * rate
        variance = (1 - ALPHA) * variance + ALPHA * (1 - ALPHA) * diff * diff
    assert math.isclose(state.mean, mean, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(state.variance, variance, rel_tol=1e-9, abs_tol=1e-6)
    assert state.intervals == len(rates)


@given(st.lists(st.floats(min_value=0, max_value=1_000, allow_nan=False), min_size=1, max_size=30),
       st.floats(min_value=0, max_value=1_000, allow_nan=False))
def test_the_z_score_is_taken_against_the_previous_state(history: list[float], rate: float) -> None:
    state = EwmaState()
    for value in history:
        state = score(state, value, ALPHA).state
    scored = score(state, rate, ALPHA)
    assert math.isclose(scored.z, (rate - state.mean) / spread(state), rel_tol=1e-9, abs_tol=1e-9)


def test_scoring_against_the_updated_mean_could_never_flag() -> None:
    # The original's bug, for the record: against the updated state, |z| stays under 1.53.
    state = score(score(EwmaState(), 20, ALPHA).state, 20, ALPHA).state
    updated = score(state, 2_000, ALPHA).state
    buggy_z = (2_000 - updated.mean) / math.sqrt(updated.variance)
    assert buggy_z < math.sqrt((1 - ALPHA) / ALPHA) + 1e-9
    assert score(state, 2_000, ALPHA).z > 100


def test_a_steady_key_that_jumps_tenfold_is_blocked_within_two_intervals() -> None:
    steady = [20.0] * (5 * 60 // INTERVAL)
    verdicts = run([*steady, 200.0, 200.0])
    assert "block" not in verdicts[: len(steady)]
    assert "block" in verdicts[len(steady):]


def test_a_noisy_steady_key_is_never_flagged_over_an_hour() -> None:
    noise = random.Random(42)
    rates = [20 * noise.uniform(0.7, 1.3) for _ in range(3600 // INTERVAL)]
    assert set(run(rates)) == {"none"}


def test_a_slow_ramp_is_not_blocked_but_a_five_fold_step_is_flagged() -> None:
    ramp = [20 * 1.1**i for i in range(40)]
    assert "block" not in run(ramp)
    assert "soft_limit" not in run(ramp)
    step = [20.0] * 30 + [100.0]
    assert run(step)[-1] in {"soft_limit", "block"}


def test_no_verdict_during_warm_up_or_below_the_volume_floor() -> None:
    assert run([1.0, 500.0]) == ["none", "none"]  # second interval: still warming up
    quiet = [0.1] * 20 + [0.9]
    assert run(quiet)[-1] == "none"
