"""Anomaly scoring of a key's request rate: EWMA mean and variance, Z-score against the
state *before* the interval is folded in.

    z_t   = (x_t - mu_{t-1}) / sigma_{t-1},   sigma_{t-1} = max(sqrt(var_{t-1}), sqrt(mu_{t-1}), 1)
    d     = x_t - mu_{t-1}
    mu_t  = mu_{t-1} + alpha * d
    var_t = (1 - alpha) * (var_{t-1} + alpha * d^2)

Scoring against the updated mean (the original Heliox Proxy's bug) bounds |z| by
sqrt((1 - alpha) / alpha) ~ 1.53 at alpha = 0.3, so it could never reach a threshold of 3.
The sqrt(mu) floor is Poisson noise: a perfectly steady key has var -> 0, and without a
floor one extra request would look infinitely anomalous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EwmaState:
    mean: float = 0.0
    variance: float = 0.0
    intervals: int = 0


@dataclass(frozen=True, slots=True)
class Scored:
    z: float
    state: EwmaState  # after folding this interval in


def spread(state: EwmaState) -> float:
    return max(math.sqrt(state.variance), math.sqrt(state.mean), 1.0)


def score(state: EwmaState, rate: float, alpha: float) -> Scored:
    """The interval's Z-score against the previous state, and the state with it folded in."""
    if state.intervals == 0:
        return Scored(0.0, EwmaState(rate, 0.0, 1))
    deviation = rate - state.mean
    z = deviation / spread(state)
    mean = state.mean + alpha * deviation
    variance = (1 - alpha) * (state.variance + alpha * deviation * deviation)
    return Scored(z, EwmaState(mean, variance, state.intervals + 1))


@dataclass(frozen=True, slots=True)
class Thresholds:
    z_flag: float  # |z| above this is an anomaly (ABUSE_ZSCORE_THRESHOLD)
    z_block: float  # above this, block rather than soft-limit
    warmup_intervals: int  # no verdict during a key's first K intervals
    min_rate: float  # requests/s below which no verdict is given


def verdict(scored: Scored, previous: EwmaState, rate: float, thresholds: Thresholds) -> str:
    """'none', 'soft_limit' or 'block' for one interval. Only a rise is abuse: a key
    that goes quiet has a large negative z and nothing to answer for."""
    if previous.intervals < thresholds.warmup_intervals or rate < thresholds.min_rate:
        return "none"
    if scored.z > thresholds.z_block:
        return "block"
    if scored.z > thresholds.z_flag:
        return "soft_limit"
    return "none"
